"""Running eseal as a deployment: the cluster shape on one machine and its load driver."""
