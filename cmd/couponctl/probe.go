package main

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

func init() {
	register("probe", "exit 0 when a URL answers 2xx (container health checks)", runProbe)
}

func runProbe(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: couponctl probe URL")
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s", args[0], resp.Status)
	}
	return nil
}
