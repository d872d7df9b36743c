package mirror

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/afterlife-oss/afterlife/registry/device"
)

// SignedTarget is one target file a repository lists.
// SignedTarget is a file the mirror's verified TUF metadata signs: its
// target path, length, sha256 and afterlife's signed fields.
type SignedTarget struct {
	Name   string
	Length int64
	SHA256 string
	Meta   device.TargetMeta
}

// metaName is the consistent-snapshot file of version v of role.
func metaName(v int64, role string) string { return strconv.FormatInt(v, 10) + "." + role + ".json" }

// snapshotName reads the snapshot version a timestamp names.
func snapshotName(ts *metadata.Metadata[metadata.TimestampType]) (string, *metadata.MetaFiles, error) {
	m, ok := ts.Signed.Meta["snapshot.json"]
	if !ok || m == nil {
		return "", nil, fmt.Errorf("the timestamp names no snapshot.json")
	}
	return metaName(m.Version, "snapshot"), m, nil
}

// binNames lists the delegated roles of targets with the file of the
// version the snapshot names (hashed bins, or classic delegations).
func delegatedFiles(snap *metadata.Metadata[metadata.SnapshotType], targets *metadata.Metadata[metadata.TargetsType]) (map[string]string, error) {
	out := map[string]string{}
	if targets.Signed.Delegations == nil {
		return out, nil
	}
	var roles []string
	if sr := targets.Signed.Delegations.SuccinctRoles; sr != nil {
		roles = sr.GetRoles()
	}
	for _, r := range targets.Signed.Delegations.Roles {
		roles = append(roles, r.Name)
	}
	for _, r := range roles {
		m, ok := snap.Signed.Meta[r+".json"]
		if !ok || m == nil {
			return nil, fmt.Errorf("the snapshot does not name the delegated role %s", r)
		}
		out[r] = metaName(m.Version, r)
	}
	return out, nil
}

// targetsOf lists the files a targets (or bin) role signs, leaving out
// entries without content (a product's release list has length 0).
func targetsOf(t *metadata.Metadata[metadata.TargetsType]) []SignedTarget {
	var out []SignedTarget
	for name, tf := range t.Signed.Targets {
		if tf == nil || tf.Length == 0 {
			continue
		}
		tt := SignedTarget{Name: name, Length: tf.Length, SHA256: tf.Hashes["sha256"].String()}
		if tf.Custom != nil {
			_ = json.Unmarshal(*tf.Custom, &tt.Meta)
		}
		out = append(out, tt)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
