// Package ovsdb configures Open vSwitch through its database (OVSDB, RFC 7047).
package ovsdb
