package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/internal/auth/authcli"
	"github.com/afterlife-oss/afterlife/internal/backup"
	"github.com/afterlife-oss/afterlife/internal/blob/s3store"
	apicli "github.com/afterlife-oss/afterlife/internal/cli"
	"github.com/afterlife-oss/afterlife/internal/config"
	"github.com/afterlife-oss/afterlife/internal/errs"
	registrycli "github.com/afterlife-oss/afterlife/registry/cli"
	"github.com/afterlife-oss/afterlife/registry/fwupd/fwupdcli"
	"github.com/afterlife-oss/afterlife/registry/tuf/rootcli"
)

// newAdminCmd is "afterlife admin": the API's admin commands come from the
// parts (tokens and orgs from authcli, device ids and keys from the
// registry); blobs init, backup and restore work on the server's own
// storage, so they are here.
func newAdminCmd() *cobra.Command {
	var cf apicli.Flags
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Administer a server: tokens, organisations, keys, the TUF root, backups",
		Long: `Administer a running afterlife server over its API.

The token defaults to ./data/admin.token, which serve writes on first start.`,
	}
	cf.Add(cmd)
	cmd.AddCommand(authcli.TokenCommand(&cf), authcli.OrgCommand(&cf), authcli.WhoamiCommand(&cf),
		registrycli.DeviceIDsCommand(&cf), registrycli.MaintainerCommand(&cf), registrycli.KeysCommand(&cf), rootcli.New(cf.Call, time.Now), fwupdcli.Command(time.Now), newBlobsCmd(), newBackupCmd(), newRestoreCmd(),
		newRehomeCmd())
	return cmd
}

func newBlobsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "blobs", Short: "Prepare the blob store serve uses"}
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create the S3 bucket of --blobs with object lock (safe to run again)",
		Long: `Create the bucket that --blobs names, with object lock (and so versioning), which
serve needs before it starts: retention of sealed blobs (--retention) relies on
it, and S3 gives object lock only to a new bucket. An existing bucket with object
lock is left as it is; one without is refused. It reads the same settings as serve
(flags, AFTERLIFE_* variables, --config), and the S3 credentials from
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. The embedded default's disk store
needs no init.`,
		Example: `  AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… \
  afterlife admin blobs init --blobs 's3://afterlife?endpoint=minio:9000&secure=false'`,
	}
	withServeSettings(initCmd, func(cmd *cobra.Command, cfg config.Serve) error {
		if cfg.Blobs == "" {
			return errs.E(errs.Invalid, "blobs init: no --blobs S3 URL given; the embedded disk store needs no init")
		}
		s3cfg, err := s3store.ParseURL(cfg.Blobs)
		if err != nil {
			return err
		}
		b, err := s3store.Init(cmd.Context(), s3cfg)
		if err != nil {
			return err
		}
		if b.Created {
			fmt.Fprintf(cmd.OutOrStdout(), "bucket %s created with object lock\n", b.Name)
		} else {
			fmt.Fprintf(cmd.OutOrStdout(), "bucket %s exists with object lock\n", b.Name)
		}
		return nil
	})
	cmd.AddCommand(initCmd)
	return cmd
}

func newBackupCmd() *cobra.Command {
	var data string
	cmd := &cobra.Command{
		Use:   "backup DEST",
		Short: "Back up the embedded default: a consistent SQLite snapshot, the blobs and the keys",
		Long: `Write a backup of an embedded (SQLite + disk) data directory to DEST, which must
not exist yet. It is safe while the server runs: the database is snapshotted with
VACUUM INTO, then the blobs it references (content-addressed and never changed) and
the keys are copied, and a manifest records every file's sha256.

For PostgreSQL and S3 deployments back up with their own tools (pg_dump, mc mirror)
plus the key directory; see deploy/*/README.md.`,
		Example: `  afterlife admin backup --data ./data /var/backups/afterlife-2026-12-05`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := backup.Backup(cmd.Context(), data, args[0], binaryVersion())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backup of %s written to %s (%d files)\n", data, args[0], len(m.Files))
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", "./data", "data directory of the embedded server")
	return cmd
}

func newRestoreCmd() *cobra.Command {
	var data string
	cmd := &cobra.Command{
		Use:   "restore SRC",
		Short: "Restore a backup into an empty data directory, verifying every file",
		Long: `Restore a backup made by "afterlife admin backup" into --data, which must be empty
or absent. Every file is checked against the backup's manifest; nothing is left
behind when a check fails. Then start "afterlife serve --data DIR" as usual.`,
		Example: `  afterlife admin restore --data ./data /var/backups/afterlife-2026-12-05`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := backup.Restore(args[0], data)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %d files into %s\n", n, data)
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", "./data", "data directory to restore into (must be empty)")
	return cmd
}
