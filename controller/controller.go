package controller

import (
	"context"
	"errors"
	"net"
)

// Controller accepts OpenFlow 1.3 switch connections and runs one session
// per connection. Create it with New.
type Controller struct {
	cfg  Config
	apps []App
}

// New validates cfg and returns a Controller that dispatches events to
// apps in the given order.
func New(cfg Config, apps ...App) (*Controller, error) {
	return &Controller{cfg: cfg.withDefaults(), apps: apps}, nil
}

// Listen binds Config.Listen. After it returns nil, Addr is valid.
func (c *Controller) Listen() error { return errors.New("not implemented") }

// Addr returns the bound address, or nil before Listen.
func (c *Controller) Addr() net.Addr { return nil }

// Serve accepts switches until ctx is done, then closes all sessions and
// waits for them. It returns nil on ctx cancellation.
func (c *Controller) Serve(ctx context.Context) error { return errors.New("not implemented") }

// Run is Listen followed by Serve.
func (c *Controller) Run(ctx context.Context) error {
	if err := c.Listen(); err != nil {
		return err
	}
	return c.Serve(ctx)
}

// ServeConn runs one session on conn and returns when it ends.
func (c *Controller) ServeConn(ctx context.Context, conn net.Conn) error {
	return errors.New("not implemented")
}

// Switches returns the connected switches whose handshake completed,
// sorted by DPID.
func (c *Controller) Switches() []*Switch { return nil }

// Switch returns the connected switch with the given DPID.
func (c *Controller) Switch(dpid DPID) (*Switch, bool) { return nil, false }
