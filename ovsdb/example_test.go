package ovsdb_test

import (
	"context"
	"log"
	"log/slog"
	"time"

	"github.com/skyvisor/skyvisor/ovsdb"
)

// A hypervisor configures a site's integration bridge and tunnel, then binds
// VM interfaces as they are plugged (external_ids:iface-id).
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := ovsdb.Dial(ctx, "unix:/var/run/openvswitch/db.sock", ovsdb.WithLogger(slog.Default()))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	err = c.EnsureBridge(ctx, ovsdb.BridgeSpec{
		Name:         "br-int",
		DatapathID:   "0000000000000001",
		DatapathType: "netdev",
		Protocols:    []string{"OpenFlow13"},
		FailMode:     "secure",
		Controllers:  []string{"tcp:192.168.254.254:6653"},
	})
	if err != nil {
		log.Fatal(err)
	}
	err = c.EnsureTunnelPort(ctx, "br-int", ovsdb.TunnelPort{
		Name: "tun-s2", Type: ovsdb.TunnelVXLAN, RemoteIP: "172.31.0.2", Key: ovsdb.FlowOption, OFPort: 102,
	})
	if err != nil {
		log.Fatal(err)
	}
	events, err := c.WatchInterfaces(ctx, "br-int")
	if err != nil {
		log.Fatal(err)
	}
	for ev := range events {
		if ev.Type != ovsdb.InterfaceRemoved && ev.Interface.IfaceID() != "" && ev.Interface.OFPort > 0 {
			log.Printf("bind port %d (%s) to tenant port %s", ev.Interface.OFPort, ev.Interface.AttachedMAC(), ev.Interface.IfaceID())
		}
	}
}
