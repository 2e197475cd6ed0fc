// Package config loads and validates a node's configuration (file, flags and
// environment) and the federation file shared by all members. Each member's
// entry in the federation file may list the account domains it serves
// (Member.Domains): the member is the home of the accounts NAME@DOMAIN of
// those domains (Federation.Home), and its portal creates no others
// (ServedDomains). The domains are part of the signed federation text.
package config
