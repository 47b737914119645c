package main

import (
	"context"
	"errors"
	"log/slog"
)

type composeOptions struct {
	Dir string
	Log *slog.Logger
}

func newComposeCluster(context.Context, composeOptions) (Cluster, error) {
	return nil, errors.New("--compose: not built yet")
}
