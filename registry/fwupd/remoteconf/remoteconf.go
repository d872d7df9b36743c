// Package remoteconf writes the fwupd remote's configuration file (for
// /etc/fwupd/remotes.d/) and names the remote's paths, for the registry
// that serves the remote and for mirrors of it (registry/mirror), which
// link no server code.
package remoteconf

import (
	"fmt"
	"strings"
)

// The remote's name on devices and its paths under a site root, the same
// on the registry and on a mirror.
const (
	RemoteID      = "afterlife"
	Prefix        = "/fwupd/"
	MetadataPath  = Prefix + "firmware.xml.zst"
	ConfPath      = Prefix + RemoteID + ".conf"
	CAPath        = Prefix + RemoteID + "-ca.pem"
	CabsDir       = Prefix + "cabs"
	DefaultBranch = "community"
)

// Registry is the .conf of the remote a registry at url serves. It is
// disabled: the owner opts in by setting Enabled=true.
func Registry(url, branch string) string { return conf(url, branch, "") }

// Mirror is the .conf of the remote for a mirror of the registry at
// origin, served at mirrorURL. The signed metadata still names the
// origin's cabinets; FirmwareBaseURI makes fwupd fetch each from the
// mirror's fwupd/cabs/ instead (fwupd keeps the location's file name and
// replaces what comes before it), so the remote works without the origin.
func Mirror(mirrorURL, origin, branch string) string {
	return conf(strings.TrimRight(mirrorURL, "/"), branch, origin)
}

func conf(url, branch, mirrorOf string) string {
	if branch == "" {
		branch = DefaultBranch
	}
	from := "the afterlife registry at\n# " + url
	if mirrorOf != "" {
		from = "a mirror of the afterlife registry at\n# " + mirrorOf + ", served at " + url
	}
	var b strings.Builder
	fmt.Fprintf(&b, `[fwupd Remote]
# Community firmware for end-of-life devices, from %[6]s.
# Each release is rebuilt bit for bit by independent builders;
# it is offered on the fwupd branch %[2]q, never as a vendor update.
#
# To opt in:
#   1. copy this file to /etc/fwupd/remotes.d/%[3]s.conf
#   2. copy %[1]s%[4]s into fwupd's metadata and
#      firmware certificate directories, as LVFS's CA is installed
#      (/etc/pki/fwupd-metadata/ and /etc/pki/fwupd/ on Debian and Ubuntu,
#      /usr/share/pki/fwupd-metadata/ and /usr/share/pki/fwupd/ elsewhere)
#   3. set Enabled=true below, then run: fwupdmgr refresh
#   4. list the community releases of a device: fwupdmgr get-releases
#      and switch to them: fwupdmgr switch-branch
Enabled=false
Title=afterlife community firmware (%[1]s)
MetadataURI=%[1]s%[5]s
`, url, branch, RemoteID, CAPath, MetadataPath, from)
	if mirrorOf != "" {
		fmt.Fprintf(&b, "FirmwareBaseURI=%s%s\n", url, CabsDir)
	}
	b.WriteString("ApprovalRequired=false\nAutomaticReports=false\n")
	return b.String()
}
