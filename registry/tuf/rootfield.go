package tuf

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// RootField is the signed custom field name of the root metadata, or nil.
func (r *Repo) RootField(ctx context.Context, name string) (any, error) {
	root, err := getMeta[metadata.RootType](ctx, r.store, "root.json")
	if err != nil {
		return nil, err
	}
	return root.Signed.UnrecognizedFields[name], nil
}

// SetRootField publishes a new root version whose signed custom field
// name holds value (anything that encodes to JSON), so that what devices
// must trust besides the TUF keys (the transparency log's key and witness
// policy) reaches them signed, through the root chain they already walk.
// It needs root.key in the key dir, like a rotation. It reports whether a
// new root was published: nothing changes when the root already holds
// value. Across replicas the caller must hold the signing lock.
func (r *Repo) SetRootField(ctx context.Context, name string, value any) (bool, error) {
	var want any
	b, err := json.Marshal(value)
	if err != nil {
		return false, fmt.Errorf("tuf: encode root field %s: %w", name, err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		return false, fmt.Errorf("tuf: encode root field %s: %w", name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := r.load(ctx)
	if err != nil {
		return false, err
	}
	if reflect.DeepEqual(st.root.Signed.UnrecognizedFields[name], want) {
		return false, nil
	}
	if rl := st.root.Signed.Roles[metadata.ROOT]; rl == nil || rl.Threshold > 1 {
		// One key cannot sign a root held by a threshold of keys.
		return false, errs.E(errs.Unavailable, "tuf: root field %s: the root needs a threshold of keys; a new root with the field goes through its key holders", name)
	}
	if err := r.syncKeys(st); err != nil {
		return false, err
	}
	rootKey, err := readKey(keyPath(r.keyDir, metadata.ROOT))
	if errs.Is(err, errs.NotFound) {
		return false, errs.E(errs.Unavailable, "tuf: root field %s: root.key is not in the key dir; bring the offline root key back to publish it", name)
	}
	if err != nil {
		return false, err
	}
	if !listedIn(st.root, metadata.ROOT)(rootKey.id) {
		return false, errs.E(errs.Invalid, "tuf: root field %s: root.key in the key dir is not the key the current root trusts", name)
	}
	root, err := copyRoot(st.root)
	if err != nil {
		return false, err
	}
	if root.Signed.UnrecognizedFields == nil {
		root.Signed.UnrecognizedFields = map[string]any{}
	}
	root.Signed.UnrecognizedFields[name] = want
	root.Signed.Version++
	root.Signed.Expires = r.expires(r.o.RootExpiry)
	if _, err := signMeta(root, rootKey); err != nil {
		return false, err
	}
	if err := r.commit(ctx, st, change{root: root}); err != nil {
		return false, fmt.Errorf("tuf: root field %s: %w", name, err)
	}
	r.o.Logger.Info("tuf root field published", "field", name, "root_version", root.Signed.Version)
	return true, nil
}
