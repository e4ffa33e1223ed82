//go:build integration

package ovsdb

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/skyvisor/skyvisor/internal/ovstest"
)

func benchClient(b *testing.B, name string) (*ovstest.Instance, *Client, context.Context) {
	inst := ovstest.Start(b, name)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	b.Cleanup(cancel)
	c, err := Dial(ctx, inst.DBEndpoint(), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	if err := c.EnsureBridge(ctx, BridgeSpec{Name: "sko-br0", DatapathType: "netdev", Protocols: []string{"OpenFlow13"},
		FailMode: "secure", DatapathID: "00000000000000f1", Controllers: []string{"tcp:127.0.0.1:16653"}}); err != nil {
		b.Fatal(err)
	}
	return inst, c, ctx
}

// BenchmarkEnsureBridgeUnchanged measures the idempotent path: a cache
// snapshot and a comparison, no round trip to ovsdb-server.
func BenchmarkEnsureBridgeUnchanged(b *testing.B) {
	_, c, ctx := benchClient(b, "sko-bench1")
	spec := BridgeSpec{Name: "sko-br0", DatapathType: "netdev", Protocols: []string{"OpenFlow13"},
		FailMode: "secure", DatapathID: "00000000000000f1", Controllers: []string{"tcp:127.0.0.1:16653"}}
	n := c.Transactions()
	b.ReportAllocs()
	for b.Loop() {
		if err := c.EnsureBridge(ctx, spec); err != nil {
			b.Fatal(err)
		}
	}
	if c.Transactions() != n {
		b.Fatal("unchanged spec sent transactions")
	}
}

// BenchmarkTunnelPortCreateDelete measures one EnsureTunnelPort (create)
// plus one DeleteTunnelPort: two transactions committed by ovsdb-server.
func BenchmarkTunnelPortCreateDelete(b *testing.B) {
	_, c, ctx := benchClient(b, "sko-bench2")
	p := TunnelPort{Name: "tun-b", Type: "vxlan", RemoteIP: "10.9.0.2", Key: "flow", OFPort: 200}
	for b.Loop() {
		if err := c.EnsureTunnelPort(ctx, "sko-br0", p); err != nil {
			b.Fatal(err)
		}
		if err := c.DeleteTunnelPort(ctx, "sko-br0", p.Name); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTunnelPortUntilOFPort measures creating a tunnel port until
// ovs-vswitchd reports its OpenFlow port number (WaitInterface).
func BenchmarkTunnelPortUntilOFPort(b *testing.B) {
	_, c, ctx := benchClient(b, "sko-bench3")
	p := TunnelPort{Name: "tun-b", Type: "geneve", RemoteIP: "10.9.0.2", Key: "flow", OFPort: 200}
	for b.Loop() {
		if err := c.EnsureTunnelPort(ctx, "sko-br0", p); err != nil {
			b.Fatal(err)
		}
		if _, err := c.WaitInterface(ctx, "sko-br0", p.Name); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := c.DeleteTunnelPort(ctx, "sko-br0", p.Name); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
