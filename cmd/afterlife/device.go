package main

import (
	"github.com/spf13/cobra"

	"github.com/afterlife-oss/afterlife/registry/device/cli"
)

// newDeviceCmd is `afterlife device …`: the commands of the small
// afterlife-device binary, kept in the full binary as an alias.
func newDeviceCmd() *cobra.Command {
	cmd := cli.Command()
	cmd.Long += `

A device runs the small afterlife-device binary (make device-client); these are the same
commands.`
	return cmd
}
