"""Adapters: the only modules that know about DynamoDB, S3 and SQS wire details."""
