"""The rules shipped with shellsieve; installed as package data `shellsieve.patterns`."""
