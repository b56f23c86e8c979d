"""fab backup and fab restore: encrypted dumps of each service's database in S3, and restores you can prove.

Backup, per service (its own database credentials, the ones the nodes use: no admin credential):

  pg_dump --format=custom, run here against a tunnel on the bastion (Fleet.tunnel: 127.0.0.1 only, the
  database never exposed; ``host`` is the real name for TLS, ``hostaddr`` the tunnel), its connection
  settings and password in the child's environment only (PG*; never argv, never a file)
  -> its stdout read in 8 KiB pieces, hashed (sha256 of the plaintext)
  -> age-encrypted in memory (pyrage, X25519 recipients from the inventory: the public key only; whoever
     runs backups, a CI job for instance, cannot read them)
  -> S3 multipart upload in 8 MiB parts, hashed again (sha256 of the object).
Nothing touches the operator's disk. Then ``<id>.manifest.json`` next to the object (no secret in it):
time, service, database, sizes and checksums of both forms, the node versions (the database's
``node_versions`` and each running container's label), and the digest of every row of the tables the role
names as its key store (Chainlink: ``encrypted_key_rings``, the keys encrypted with the keystore password:
they are in the dump as stored, and the digests let a restore drill show "same key rows"). The manifest is
written last: an object without one is an unfinished backup. Then the retention policy
(``retention``): the newest backup of each of the last ``keep_daily`` days that have one and of each of the
last ``keep_weekly`` ISO weeks that have one are kept (restic's --keep-daily/--keep-weekly), the rest
deleted with their manifests, and unfinished objects more than UNFINISHED_GRACE older than this run's (backups
take no lock: a younger one may be another run's, between its upload and its manifest).

One snapshot: on one connection (through one tunnel) a REPEATABLE READ transaction exports its snapshot
(pg_export_snapshot), the key rows and the node's version are read in it, and pg_dump --snapshot dumps that
same snapshot while the transaction stays open: the manifest's key rows are the dump's, whatever the nodes
write meanwhile.

Restore of one backup into a new database:

  1. before anything changes: the identity read (a secret reference or a file; only here) and checked
     against the manifest's recipients, the target name checked (not the live database without
     --replace-live), the whole object streamed once and its size and sha256 compared with the manifest:
     a truncated or corrupt object stops here (exit 1), nothing created;
  2. under the service's deploy lock: the target must not exist (exit 2; with --replace-live it is
     dropped), CREATE DATABASE ... OWNER <the service's role> as the admin role (which must be a member of
     it), PUBLIC's rights revoked;
  3. the object streamed again (and hashed again: it must be the bytes just checked) -> age-decrypted
     -> pg_restore --single-transaction as the service's role; the plaintext's sha256 compared at the
     end. Any failure drops the new database: nothing half-restored is left;
  4. the key rows of the restored database compared with the manifest's.

Decisions. age rather than a KMS envelope: encrypting needs only a public key, so the job that writes
backups cannot read them, and restoring needs no cloud account (a KMS key is one more thing that must survive
the disaster). pg_dump's custom format: compressed, and pg_restore can list or select from it; read from a
pipe it restores in order, which a full restore is. The dump runs here, through the bastion, rather than on
the bastion: nothing to install there, and the plaintext never exists outside this process's memory. Backups
take no deploy lock (a dump is a snapshot and changes nothing: a deploy must not fail a scheduled backup, nor
the reverse); restores do (they create and may drop databases on the service's server).

The drill, which proves the backup works, is the next step: deploy the pair against the restored
database (an inventory whose DATABASE_NAME is the new one) with the keystore password it always had; the
nodes boot only if they can decrypt their key ring, and their key rows must still equal the manifest's.

The package, one job a module: ``rules`` (pure: ids and object names, retention, the manifest, the pg_dump and
pg_restore commands, the backup settings), ``store`` (hashing streams, the bucket, multipart uploads), ``dump``
(fab backup), ``recover`` (fab restore).
"""

from nodeops.backup.dump import backup, prepare_backup
from nodeops.backup.recover import prepare_restore, restore
from nodeops.backup.rules import policy_of

__all__ = ["backup", "policy_of", "prepare_backup", "prepare_restore", "restore"]
