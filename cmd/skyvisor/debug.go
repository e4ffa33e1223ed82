package main

import (
	"encoding/json"
	"net/http"

	"github.com/skyvisor/skyvisor/controller"
	"github.com/skyvisor/skyvisor/controller/apps/discovery"
)

// linker is an app that knows links (the discovery app).
type linker interface {
	Links() []discovery.Link
}

// switchInfo is one entry of GET /debug/switches.
type switchInfo struct {
	DPID  string   `json:"dpid"`  // 16 hex digits
	Ports []uint32 `json:"ports"` // port numbers, as the switch reported them
}

// debugHandler serves, read-only, for tests and operators:
//
//	GET /debug/links    -> {"links": [{"src":{"dpid":1,"port":2},"dst":{...}}, ...]} (directed, sorted)
//	GET /debug/switches -> {"switches": [{"dpid":"0000000000000001","ports":[1,2]}, ...]}
//
// /debug/links answers 404 when no running app knows links.
func debugHandler(c *controller.Controller, appList []controller.App) http.Handler {
	mux := http.NewServeMux()
	var lk linker
	for _, a := range appList {
		if l, ok := a.(linker); ok {
			lk = l
			break
		}
	}
	mux.HandleFunc("GET /debug/links", func(w http.ResponseWriter, r *http.Request) {
		if lk == nil {
			http.Error(w, "no link discovery app running", http.StatusNotFound)
			return
		}
		links := lk.Links()
		if links == nil {
			links = []discovery.Link{}
		}
		writeJSON(w, map[string]any{"links": links})
	})
	mux.HandleFunc("GET /debug/switches", func(w http.ResponseWriter, r *http.Request) {
		out := []switchInfo{}
		for _, sw := range c.Switches() {
			si := switchInfo{DPID: fmt16(uint64(sw.DPID())), Ports: []uint32{}}
			for _, p := range sw.Ports() {
				si.Ports = append(si.Ports, uint32(p.PortNo))
			}
			out = append(out, si)
		}
		writeJSON(w, map[string]any{"switches": out})
	})
	return mux
}

// fmt16 formats v as 16 hex digits.
func fmt16(v uint64) string {
	const hex = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = hex[v&0xf]
		v >>= 4
	}
	return string(b[:])
}

// writeJSON writes v as indented JSON.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
