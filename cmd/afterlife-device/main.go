// Command afterlife-device is the device side of afterlife, small enough
// for a device: it keeps firmware updated from an afterlife registry
// (init, update, run as a service, status, rollback). It links the device
// client, go-tuf and the HTTP client, never server, database or browser
// code; `afterlife device` is the same commands in the full binary.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/afterlife-oss/afterlife/registry/device/cli"
)

// version is stamped at build time (-X main.version=…).
var version = "dev"

func main() {
	cmd := cli.Command()
	cmd.Use = "afterlife-device"
	cmd.Version = version
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "afterlife-device:", err)
		os.Exit(1)
	}
}
