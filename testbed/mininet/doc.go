// Package mininet holds the Mininet (2.3.0) version of the Skyvisor
// multi-cloud lab, skyvisor_clouds.py, and tests that run it. See docs/lab.md.
package mininet
