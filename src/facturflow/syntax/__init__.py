"""Syntax bindings: read a CII or UBL document into the EN 16931 model, write the model back."""
