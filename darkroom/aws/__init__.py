"""Small boto3 adapters. Everything that talks to AWS lives below this package."""
