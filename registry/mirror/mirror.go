// Package mirror copies everything public of an afterlife registry into a
// directory that any static web server can serve (Pull), and checks such a
// copy offline from a pinned TUF root (Verify).
//
// It is a client of the registry's public HTTP API and static files: it
// never reads a database, and it copies only what the registry serves to
// anonymous callers (escrow files of the public rights class, never
// build-only or private ones). Devices read a mirror exactly as they read
// the origin: /tuf/, /log/ and /fwupd/ keep their paths. What has no
// static path of its own on the origin (API answers: releases, builds,
// deposits) is kept under api/ in the layout below (docs/mirror.md).
package mirror

import (
	"path"
	"strings"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// The mirror's layout. The paths of devices and fwupd are the origin's.
const (
	TUFDir     = "tuf"
	LogDir     = "log"
	FwupdDir   = "fwupd"
	APIDir     = "api"
	StateFile  = "mirror.json"
	partSuffix = ".part"
)

// Paths of the API answers a mirror keeps.
func releaseFile(id string) string { return path.Join(APIDir, "releases", id+".json") }
func buildFile(id string) string   { return path.Join(APIDir, "builds", id+".json") }
func depositFile(id string) string { return path.Join(APIDir, "deposits", id+".json") }
func receiptFile(id string) string { return path.Join(APIDir, "deposits", id+".receipt.json") }
func productFile(id string) string { return path.Join(APIDir, "products", id+".json") }
func attestationFile(build, job string) string {
	return path.Join(APIDir, "builds", build, "jobs", job, "attestation.dsse.json")
}
func buildInfoFile(build, job string) string {
	return path.Join(APIDir, "builds", build, "jobs", job, "buildinfo.json")
}
func depositFilePath(id, p string) string { return path.Join(APIDir, "deposits", id, "files", p) }

const (
	logInfoFile    = APIDir + "/log.json"
	buildersFile   = APIDir + "/builders.json"
	receiptKeyFile = APIDir + "/receipt-key.json"
	productsFile   = APIDir + "/products.json"
	releasesFile   = APIDir + "/releases.json"
	depositsFile   = APIDir + "/deposits.json"
)

// targetFile is where a consistent-snapshot repository keeps a target:
// tuf/targets/<dir>/<sha256>.<basename>.
func targetFile(name, sum string) string {
	dir, base := path.Split(name)
	return path.Join(TUFDir, "targets", dir, sum+"."+base)
}

// ReadTarget reads a signed target's file from the mirror in dir and
// checks it against the target's signed length and sha256 again (a
// mirror may change after it was verified).
func ReadTarget(dir string, t SignedTarget) ([]byte, error) {
	rel := targetFile(t.Name, t.SHA256)
	b, err := readMirror(dir, rel)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != t.Length || sha256Hex(b) != t.SHA256 {
		return nil, errs.E(errs.Invalid, "mirror: %s is not the file target %s signs", rel, t.Name)
	}
	return b, nil
}

// safeID is an id the mirror may use as one path element.
func safeID(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\\\x00") && len(s) <= 200
}

// State is what mirror.json records of the last pull.
type State struct {
	Origin   string `json:"origin"`
	PulledAt string `json:"pulled_at"`
	Files    int    `json:"files"`
	Bytes    int64  `json:"bytes"`
}
