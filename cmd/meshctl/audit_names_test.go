package main

import "github.com/intermesh/intermesh/audit"

// The report's vocabulary, as the tests that drive 'meshctl audit' read it.
type (
	auditFailure   = audit.Failure
	checkCount     = audit.CheckCount
	evidenceReport = audit.Evidence
)

const (
	checkCheckpoint        = audit.CheckCheckpoint
	checkConsistency       = audit.CheckConsistency
	checkEntries           = audit.CheckEntries
	checkEquivocation      = audit.CheckEquivocation
	checkFederationRecords = audit.CheckFederationRecords
	checkMasterIncl        = audit.CheckMasterIncl
	checkMap               = audit.CheckMap
	checkMasterRecords     = audit.CheckMasterRecords
	checkPeerCP            = audit.CheckPeerCP
	checkRecordIncl        = audit.CheckRecordIncl
	checkRoot              = audit.CheckRoot
	checkStatusCert        = audit.CheckStatusCert
)
