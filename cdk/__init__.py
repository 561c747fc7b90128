"""The darkroom CDK app (see app.py); one construct per concern."""
