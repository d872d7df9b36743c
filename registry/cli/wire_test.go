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
		{"a publish request is sent in full", publishRequest{}, registry.PublishRequest{}, true},
		{"a review request is sent in full", reviewRequest{}, registry.ReviewRequest{}, true},
		{"a registration is sent in full", registration{}, catalog.Registration{}, true},
		{"a reassignment is sent in full", reassignRequest{}, catalog.ReassignRequest{}, true},
		{"a release is read as the server writes it", release{}, registry.Release{}, false},
		{"a product is read as the server writes it", product{}, catalog.Product{}, false},
		{"a reassignment's answer is read as the server writes it", reassigned{}, catalog.Reassigned{}, false},
	} {
		t.Run(c.name, func(t *testing.T) { testenv.SameJSON(t, c.view, c.server, c.whole) })
	}
}
