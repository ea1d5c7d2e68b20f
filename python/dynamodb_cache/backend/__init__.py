"""The backends of dynamodb_cache 0.1.1: in_memory and dynamodb."""
