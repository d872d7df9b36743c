package farmclient

import (
	"context"
	"net/http"
	"strconv"

	"github.com/afterlife-oss/afterlife/builder"
)

// WitnessJob implements builder.LogWitness.
func (c *Client) WitnessJob(ctx context.Context, old int64) (builder.WitnessJob, error) {
	var j builder.WitnessJob
	_, err := c.json(ctx, http.MethodGet, "/v1/farm/log/witness?old="+strconv.FormatInt(old, 10), nil, &j)
	return j, err
}

// Cosign implements builder.LogWitness.
func (c *Client) Cosign(ctx context.Context, cs builder.Cosignature) error {
	_, err := c.json(ctx, http.MethodPost, "/v1/farm/log/cosignatures", cs, nil)
	return err
}
