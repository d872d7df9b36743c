package cli

import (
	"testing"

	"github.com/afterlife-oss/afterlife/internal/testenv"
	"github.com/afterlife-oss/afterlife/registry"
	"github.com/afterlife-oss/afterlife/registry/catalog"
)

func TestTheCommandsSpeakTheServersJSON(t *testing.T) {
	for _, c := range []struct {
		name         string
		view, server any
		whole        bool
	}{
		{"a publish request sends every field the server requires", publishRequest{}, registry.PublishRequest{}, true},
		{"a review request sends every field the server requires", reviewRequest{}, registry.ReviewRequest{}, true},
		{"a rollout request sends every field the server requires", rolloutRequest{}, registry.RolloutRequest{}, true},
		{"a rollout is read as the server writes it", rollout{}, registry.Rollout{}, false},
		{"a registration sends every field the server requires", registration{}, catalog.Registration{}, true},
		{"a reassignment sends every field the server requires", reassignRequest{}, catalog.ReassignRequest{}, true},
		{"an edit sends every field the server reads", editRequest{}, catalog.Edit{}, true},
		{"a retirement sends every field the server reads", retireRequest{}, catalog.RetireRequest{}, true},
		{"a retirement's answer is read as the server writes it", retired{}, catalog.Retired{}, false},
		{"a release is read as the server writes it", release{}, registry.Release{}, false},
		{"a product is read as the server writes it", product{}, catalog.Product{}, false},
		{"a reassignment's answer is read as the server writes it", reassigned{}, catalog.Reassigned{}, false},
		{"a maintainer grant sends every field the server requires", grantRequest{}, registry.GrantRequest{}, true},
		{"a maintainer grant is read as the server writes it", grant{}, registry.Grant{}, false},
	} {
		t.Run(c.name, func(t *testing.T) { testenv.SameJSON(t, c.view, c.server, c.whole) })
	}
}
