"""S3-compatible storage (MinIO, AWS, any S3 endpoint) through the ``minio`` client: the buckets
the platform needs (``mlops storage init``) and presigned links a browser can open."""
