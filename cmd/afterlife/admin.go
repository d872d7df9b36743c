package main

import (
	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/internal/auth/authcli"
	apicli "github.com/afterlife-oss/afterlife/internal/cli"
	registrycli "github.com/afterlife-oss/afterlife/registry/cli"
)

func newAdminCmd() *cobra.Command {
	var cf apicli.Flags
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Administer a server: tokens, organisations, keys, backups",
		Long: `Administer a running afterlife server over its API.

The token defaults to ./data/admin.token, which serve writes on first start.`,
	}
	cf.Add(cmd)
	cmd.AddCommand(authcli.TokenCommand(&cf), authcli.OrgCommand(&cf), authcli.WhoamiCommand(&cf),
		registrycli.DeviceIDsCommand(&cf), registrycli.KeysCommand(&cf), newBlobsCmd(), newBackupCmd(), newRestoreCmd())
	return cmd
}
