"""Search: mixed attention layers, strategies (darts, gdas, fixed), objective, derive."""
