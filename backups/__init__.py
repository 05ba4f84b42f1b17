"""Backups (a shared operations module): the database through pgBackRest (physical backups and
WAL archiving, hence point-in-time recovery) and the files a restore needs besides it (settings,
secrets, the broker's password file and ACL, the TLS CA and certificates, Grafana provisioning)
as a tar with a manifest, both kept in one backup repository.

    plan       what to back up and the commands (pure): the repository's layout, pgBackRest's
               configuration, the archive settings, the schedule
    manifest   the files archive's manifest (pure): sizes, sha256, modes; checking a tar against it
    catalogue  pgBackRest's ``info`` read into backup sets and the recovery window (pure)
    runner     doing it: pgBackRest as the cluster's owner, the tar, the restore

docs/operations.md, "Backups and restore", is the operator's procedure.
"""
