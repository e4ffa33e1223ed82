package topology

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Parse decodes one tenant topology strictly: malformed JSON, unknown fields,
// duplicate keys, values of the wrong JSON type and numbers out of their
// field's range are all reported — every one, each with its JSON path — in a
// *ValidationError. Absent or null "apps" becomes DefaultApps(); absent lists
// become empty. Parse does not check meaning (references, duplicates,
// address syntax): call Validate next, or use Load for both in one step.
// A multi-tenant document ({"tenants": [...]}) is refused: use ParseDocument.
func Parse(data []byte) (*Topology, error) {
	root, err := parseTree(data)
	if err != nil {
		return nil, err
	}
	var errs errList
	if root.kind == kindObject && root.get("tenants") != nil && root.get("tenant") == nil {
		errs.add("$.tenants", "multi-tenant document: use ParseDocument (or Load)")
		return nil, errs.err()
	}
	t := decodeTopology(root, "$", &errs)
	if err := errs.err(); err != nil {
		return nil, err
	}
	return t, nil
}

// ParseDocument decodes a document that is either one topology object (the
// form Parse takes) or a multi-tenant object {"tenants": [topology, ...]}
// with at least one element and no other key. The form is recognized by the
// presence of the key "tenants". It returns the topologies in document order.
// Errors are reported as by Parse, with paths rooted at the document:
// "$.tenants[1].hosts[0].mac" in the multi-tenant form.
func ParseDocument(data []byte) ([]*Topology, error) {
	ts, _, errs := parseDocument(data)
	if err := errs.err(); err != nil {
		return nil, err
	}
	return ts, nil
}

// parseDocument returns the topologies decoded (possibly partial, for Load's
// merged report), the JSON path of each one's root, and the shape errors.
func parseDocument(data []byte) ([]*Topology, []string, errList) {
	root, err := parseTree(data)
	if err != nil {
		var ve *ValidationError
		errors.As(err, &ve)
		return nil, nil, errList(ve.Errors)
	}
	var errs errList
	if root.kind != kindObject || root.get("tenants") == nil {
		return []*Topology{decodeTopology(root, "$", &errs)}, []string{"$"}, errs
	}
	for _, k := range root.keys {
		if k != "tenants" {
			errs.add(childPath("$", k), "unknown field (a multi-tenant document has only \"tenants\")")
		}
	}
	list := root.get("tenants")
	if list.kind != kindArray {
		errs.add("$.tenants", "must be an array of tenant topologies, got %s", list.kind)
		return nil, nil, errs
	}
	if len(list.elems) == 0 {
		errs.add("$.tenants", "at least one tenant topology is required")
	}
	ts := make([]*Topology, len(list.elems))
	roots := make([]string, len(list.elems))
	for i, n := range list.elems {
		roots[i] = fmt.Sprintf("$.tenants[%d]", i)
		ts[i] = decodeTopology(n, roots[i], &errs)
	}
	return ts, roots, errs
}

// ---- a small ordered JSON tree, so that duplicate keys and every unknown
// field can be reported with its path (encoding/json stops at the first
// error and silently keeps the last of duplicate keys).

type kind int

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

func (k kind) String() string {
	return [...]string{"null", "boolean", "number", "string", "array", "object"}[k]
}

type node struct {
	kind  kind
	str   string
	num   json.Number
	keys  []string
	vals  []*node
	elems []*node
}

func (n *node) get(key string) *node {
	for i, k := range n.keys {
		if k == key {
			return n.vals[i]
		}
	}
	return nil
}

// maxDepth and maxKeys bound the tree: valid documents nest 6 levels and
// have objects of at most 8 keys; the bounds only stop hostile input early
// (duplicate-key detection scans an object's keys linearly).
const (
	maxDepth = 32
	maxKeys  = 64
)

type treeParser struct {
	dec  *json.Decoder
	data []byte
	errs errList
	// stack holds the path segments to the value being parsed; a path string
	// is only built when an error needs one.
	stack []segment
}

// segment is one step of a JSON path: an object key or an array index.
type segment struct {
	key   string
	index int // -1 for a key
}

func (p *treeParser) path() string {
	path := "$"
	for _, s := range p.stack {
		if s.index >= 0 {
			path = fmt.Sprintf("%s[%d]", path, s.index)
		} else {
			path = childPath(path, s.key)
		}
	}
	return path
}

// parseTree parses data into a node tree. Syntax errors are fatal (returned
// as a one-element *ValidationError with line and column); duplicate keys are
// collected.
func parseTree(data []byte) (*node, error) {
	if len(data) > MaxDocumentSize {
		return nil, errList{{Path: "$", Msg: fmt.Sprintf("document is %d bytes, larger than the %d-byte limit", len(data), MaxDocumentSize)}}.err()
	}
	p := &treeParser{dec: json.NewDecoder(bytes.NewReader(data)), data: data}
	p.dec.UseNumber()
	root, err := p.value(0)
	off := p.dec.InputOffset()
	if err == nil {
		if _, terr := p.dec.Token(); terr != io.EOF {
			err = fmt.Errorf("unexpected data after the top-level value")
			// Point at the first non-space byte after the value.
			for off < int64(len(data)) && strings.IndexByte(" \t\r\n", data[off]) >= 0 {
				off++
			}
		}
	} else {
		off = p.dec.InputOffset()
		var se *json.SyntaxError
		if errors.As(err, &se) {
			off = se.Offset
		}
	}
	if err != nil {
		return nil, errList{{Path: "$", Msg: p.position(off) + err.Error()}}.err()
	}
	if err := p.errs.err(); err != nil {
		return nil, err
	}
	return root, nil
}

// position renders an input offset as "invalid JSON at line L, column C: "
// (both counted from 1, columns in bytes).
func (p *treeParser) position(off64 int64) string {
	off := int(off64)
	if off > len(p.data) {
		off = len(p.data)
	}
	line, col := 1, 1
	for _, c := range p.data[:off] {
		if c == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return fmt.Sprintf("invalid JSON at line %d, column %d: ", line, col)
}

func (p *treeParser) value(depth int) (*node, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxDepth)
	}
	tok, err := p.dec.Token()
	if err == io.EOF {
		return nil, fmt.Errorf("unexpected end of input")
	}
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case nil:
		return &node{kind: kindNull}, nil
	case bool:
		return &node{kind: kindBool, str: strconv.FormatBool(v)}, nil
	case json.Number:
		return &node{kind: kindNumber, num: v}, nil
	case string:
		return &node{kind: kindString, str: v}, nil
	case json.Delim:
		switch v {
		case '{':
			n := &node{kind: kindObject}
			for members := 0; p.dec.More(); members++ {
				if members == maxKeys {
					return nil, fmt.Errorf("object with more than %d members", maxKeys)
				}
				kt, err := p.dec.Token()
				if err != nil {
					return nil, err
				}
				key, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("object key is not a string")
				}
				p.stack = append(p.stack, segment{key: key, index: -1})
				val, err := p.value(depth + 1)
				if err != nil {
					return nil, err
				}
				if n.get(key) != nil {
					p.errs.add(p.path(), "duplicate key")
				} else {
					n.keys = append(n.keys, key)
					n.vals = append(n.vals, val)
				}
				p.stack = p.stack[:len(p.stack)-1]
			}
			if _, err := p.dec.Token(); err != nil { // '}'
				return nil, err
			}
			return n, nil
		case '[':
			n := &node{kind: kindArray}
			for i := 0; p.dec.More(); i++ {
				p.stack = append(p.stack, segment{index: i})
				val, err := p.value(depth + 1)
				if err != nil {
					return nil, err
				}
				p.stack = p.stack[:len(p.stack)-1]
				n.elems = append(n.elems, val)
			}
			if _, err := p.dec.Token(); err != nil { // ']'
				return nil, err
			}
			return n, nil
		}
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

// childPath appends an object key to a path: ".key" for identifier-like
// keys, `["key"]` (JSON-quoted) otherwise.
func childPath(path, key string) string {
	plain := key != ""
	for _, c := range key {
		if !(c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			plain = false
			break
		}
	}
	if plain {
		return path + "." + key
	}
	q, _ := json.Marshal(key)
	return path + "[" + string(q) + "]"
}

// ---- shape decoding: tree -> structs, reporting type and range errors and
// unknown fields. Meaning is checked later by Validate.

// object checks that n is an object with only the allowed keys; it returns
// false (after reporting) if n is not an object at all.
func object(n *node, path string, errs *errList, allowed ...string) bool {
	if n.kind != kindObject {
		errs.add(path, "must be an object, got %s", n.kind)
		return false
	}
	for _, k := range n.keys {
		ok := false
		for _, a := range allowed {
			if k == a {
				ok = true
				break
			}
		}
		if !ok {
			errs.add(childPath(path, k), "unknown field")
		}
	}
	return true
}

// str decodes an optional string field; null and absent give "".
func str(obj *node, key, path string, errs *errList) string {
	n := obj.get(key)
	if n == nil || n.kind == kindNull {
		return ""
	}
	if n.kind != kindString {
		errs.add(childPath(path, key), "must be a string, got %s", n.kind)
		return ""
	}
	return n.str
}

// uintField decodes an optional integer field in 0..max (integral floats
// such as 1e3 are accepted); absent or null give 0. Range checks stricter than
// max (e.g. port ≥ 1) are Validate's job.
func uintField(obj *node, key, path string, max uint64, what string, errs *errList) uint64 {
	n := obj.get(key)
	if n == nil || n.kind == kindNull {
		return 0
	}
	p := childPath(path, key)
	if n.kind != kindNumber {
		errs.add(p, "must be %s, got %s", what, n.kind)
		return 0
	}
	v, err := strconv.ParseUint(n.num.String(), 10, 64)
	if err != nil {
		// Accept integral values written as floats (1.0, 1e2), reject the rest.
		f, ferr := strconv.ParseFloat(n.num.String(), 64)
		if ferr != nil || f < 0 || f != math.Trunc(f) || f > float64(max) {
			errs.add(p, "must be %s, got %s", what, n.num)
			return 0
		}
		v = uint64(f)
	}
	if v > max {
		errs.add(p, "must be %s, got %s", what, n.num)
		return 0
	}
	return v
}

// array returns the elements of an optional array field (nil if absent or null).
func array(obj *node, key, path string, errs *errList) []*node {
	n := obj.get(key)
	if n == nil || n.kind == kindNull {
		return nil
	}
	if n.kind != kindArray {
		errs.add(childPath(path, key), "must be an array, got %s", n.kind)
		return nil
	}
	return n.elems
}

const (
	portWhat = "an integer port number in 1..4294967040"
	vlanWhat = "an integer VLAN ID in 1..4094"
)

func decodeTopology(n *node, path string, errs *errList) *Topology {
	t := &Topology{Apps: DefaultApps(), Switches: []Switch{}, Links: []Link{}, Hosts: []Host{}}
	if !object(n, path, errs, "tenant", "apps", "switches", "links", "hosts") {
		return t
	}
	t.Tenant = str(n, "tenant", path, errs)
	if an := n.get("apps"); an != nil && an.kind != kindNull {
		t.Apps = []string{}
		for i, e := range array(n, "apps", path, errs) {
			if e.kind != kindString {
				errs.add(fmt.Sprintf("%s.apps[%d]", path, i), "must be a string, got %s", e.kind)
				continue
			}
			t.Apps = append(t.Apps, e.str)
		}
	}
	for i, e := range array(n, "switches", path, errs) {
		p := fmt.Sprintf("%s.switches[%d]", path, i)
		var s Switch
		if object(e, p, errs, "name", "dpid") {
			s.Name = str(e, "name", p, errs)
			if d := str(e, "dpid", p, errs); d != "" {
				v, err := ParseDPID(d)
				if err != nil {
					errs.add(p+".dpid", "%v", err)
				} else if v == 0 {
					errs.add(p+".dpid", "DPID 0 is reserved; omit dpid to have one derived")
				}
				s.DPID = v
			}
		}
		t.Switches = append(t.Switches, s)
	}
	for i, e := range array(n, "links", path, errs) {
		p := fmt.Sprintf("%s.links[%d]", path, i)
		var l Link
		if object(e, p, errs, "a", "b") {
			l.A = decodeEndpoint(e, "a", p, errs)
			l.B = decodeEndpoint(e, "b", p, errs)
		}
		t.Links = append(t.Links, l)
	}
	for i, e := range array(n, "hosts", path, errs) {
		p := fmt.Sprintf("%s.hosts[%d]", path, i)
		var h Host
		if object(e, p, errs, "name", "mac", "ip", "vlan", "switch", "port", "cloud", "vm") {
			h.Name = str(e, "name", p, errs)
			h.MAC = str(e, "mac", p, errs)
			h.IP = str(e, "ip", p, errs)
			if v := e.get("vlan"); v != nil && v.kind == kindNumber && v.num.String() == "0" {
				errs.add(p+".vlan", "must be %s (omit the field for untagged)", vlanWhat)
			}
			h.VLAN = uint16(uintField(e, "vlan", p, 4094, vlanWhat, errs))
			h.Switch = str(e, "switch", p, errs)
			h.Port = uint32(uintField(e, "port", p, math.MaxUint32, portWhat, errs))
			h.Cloud = str(e, "cloud", p, errs)
			h.VM = str(e, "vm", p, errs)
		}
		t.Hosts = append(t.Hosts, h)
	}
	return t
}

func decodeEndpoint(link *node, key, path string, errs *errList) Endpoint {
	var ep Endpoint
	n := link.get(key)
	p := childPath(path, key)
	if n == nil {
		return ep // Validate reports the missing endpoint
	}
	if object(n, p, errs, "switch", "port") {
		ep.Switch = str(n, "switch", p, errs)
		ep.Port = uint32(uintField(n, "port", p, math.MaxUint32, portWhat, errs))
	}
	return ep
}
