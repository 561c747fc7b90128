"""State machine definitions, authored in Python; the generated ASL JSON is committed beside.

Importing this package must stay free of the stepfunctions SDK: darkroom.workflow imports
it (through importlib.resources) only to find the committed JSON.
"""
