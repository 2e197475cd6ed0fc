// Package config loads and validates a node's configuration (file, flags and
// environment) and the federation file shared by all members.
package config
