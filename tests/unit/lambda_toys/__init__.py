"""Toy Lambda handlers run by tests/unit/test_lambda_runtime.py in real child processes."""
