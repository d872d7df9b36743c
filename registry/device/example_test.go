package device_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/afterlife-oss/afterlife/registry/device"
)

func ExampleUpdate() {
	ctx := context.Background()
	// A registry with one release of demo-cam, served on a local port.
	reg, err := newTestRegistry()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer reg.close()
	if _, err := reg.publish("1.0.0", []byte("firmware image"), false, ""); err != nil {
		fmt.Println(err)
		return
	}

	dir, err := os.MkdirTemp("", "afterlife-device-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	cfg := device.Config{
		Registry:   reg.srv.URL,
		StateDir:   filepath.Join(dir, "state"),
		InstallDir: filepath.Join(dir, "install"),
		DeviceID:   "cam-0001",
		Channel:    "stable",
	}
	// Ship the registry's root.json with the device and trust it at Init.
	if err := device.Init(ctx, cfg, reg.root(), false); err != nil {
		fmt.Println(err)
		return
	}
	res, err := device.Update(ctx, cfg, "0.9.0")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("updated:", res.Updated, "to", res.Version, "in slot", res.Slot)
	v, err := device.Current(cfg)
	fmt.Println("current:", v, err)
	// Output:
	// updated: true to 1.0.0 in slot a
	// current: 1.0.0 <nil>
}
