package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/internal/backup"
)

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
			m, err := backup.Backup(cmd.Context(), data, args[0], version)
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
