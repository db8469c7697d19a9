"""Image archives: `docker save`/`docker load` (docker_archive), OCI image layouts (oci_layout),
`docker import` (importer, with --change parsing in changes) and `docker export` (export).
tario reads archives safely and writes them deterministically; ingest is the single path by
which these modules record images in the store."""
