package node

import (
	"io/fs"
	"path/filepath"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/intermesh/intermesh/merkle"
)

// opsCollector computes, at scrape time, the figures an operator's
// dashboards and alerts need beyond the event counters (see
// deploy/grafana and deploy/prometheus):
//
//	intermesh_store_bytes{part}                 Badger's size on disk; part lsm|vlog
//	intermesh_store_disk_free_bytes             free bytes on the data directory's file system
//	intermesh_store_disk_size_bytes             size of that file system
//	intermesh_store_durable                     1 while every write was made durable, 0 once one
//	                                            was not (the node takes no writes until restarted)
//	intermesh_store_vlog_rewritten_files_total  value-log files rewritten to drop their garbage
//	intermesh_federation_members                members in the federation file
//	intermesh_federation_quorum                 signatures a certificate needs
//	intermesh_last_certified_round              newest round this node holds a certificate of
//	intermesh_replica_lag_rounds{origin}        rounds between the last round closed and the
//	                                            round of the origin's newest checkpoint its
//	                                            replica reproduces
type opsCollector struct {
	n *Node

	store, diskFree, diskSize, durable, rewritten, members, quorum, certified, lagRounds *prometheus.Desc
}

func newOpsCollector(n *Node) *opsCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &opsCollector{
		n:         n,
		store:     d("intermesh_store_bytes", "Size of the Badger store on disk, by part (lsm, vlog).", "part"),
		diskFree:  d("intermesh_store_disk_free_bytes", "Bytes available to the node on the file system of its data directory."),
		diskSize:  d("intermesh_store_disk_size_bytes", "Size of the file system of the node's data directory."),
		durable:   d("intermesh_store_durable", "1 while every write of the store was made durable; 0 once one was not, after which the node takes no writes until it is restarted."),
		rewritten: d("intermesh_store_vlog_rewritten_files_total", "Value-log files rewritten to give back the space of their garbage."),
		members:   d("intermesh_federation_members", "Members of the federation."),
		quorum:    d("intermesh_federation_quorum", "Member signatures a master-hash certificate needs."),
		certified: d("intermesh_last_certified_round", "The newest round this node holds a master-hash certificate of."),
		lagRounds: d("intermesh_replica_lag_rounds", "Rounds between the last round this node closed and the round of the origin's newest checkpoint that its replica reproduces.", "origin"),
	}
}

// storeSizes sums the sizes of Badger's table files (lsm) and value log files
// (vlog) under dir. Badger's own DB.Size reads expvars that exist only
// with its process-global metrics, which the node turns off, and so always
// answered 0.
func storeSizes(dir string) (lsm, vlog int64) {
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		switch filepath.Ext(path) {
		case ".sst":
			lsm += info.Size()
		case ".vlog":
			vlog += info.Size()
		}
		return nil
	})
	return lsm, vlog
}

// Describe implements prometheus.Collector.
func (c *opsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.store, c.diskFree, c.diskSize, c.durable, c.rewritten, c.members, c.quorum, c.certified, c.lagRounds} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *opsCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	lsm, vlog := storeSizes(n.cfg.DataDir())
	ch <- prometheus.MustNewConstMetric(c.store, prometheus.GaugeValue, float64(lsm), "lsm")
	ch <- prometheus.MustNewConstMetric(c.store, prometheus.GaugeValue, float64(vlog), "vlog")
	durable := 1.0
	if n.log.Durability() != nil {
		durable = 0
	}
	ch <- prometheus.MustNewConstMetric(c.durable, prometheus.GaugeValue, durable)
	ch <- prometheus.MustNewConstMetric(c.rewritten, prometheus.CounterValue, float64(n.garbageFiles.Load()))
	var fs syscall.Statfs_t
	if err := syscall.Statfs(n.cfg.DataDir(), &fs); err == nil {
		ch <- prometheus.MustNewConstMetric(c.diskFree, prometheus.GaugeValue, float64(fs.Bavail)*float64(fs.Bsize))
		ch <- prometheus.MustNewConstMetric(c.diskSize, prometheus.GaugeValue, float64(fs.Blocks)*float64(fs.Bsize))
	}
	im, fed := n.Mesh(), n.federation()
	if fed == nil || im == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(len(fed.Members)))
	ch <- prometheus.MustNewConstMetric(c.quorum, prometheus.GaugeValue, float64(fed.EffectiveQuorum()))
	if cert, ok := im.LatestCertificate(); ok {
		ch <- prometheus.MustNewConstMetric(c.certified, prometheus.GaugeValue, float64(cert.Round))
	}
	closed := n.Epoch() // the round in progress; the last one closed is before it
	if closed > 0 {
		closed--
	}
	for origin, st := range im.Replicas() {
		if len(st.Verified) == 0 {
			continue // nothing verified yet: intermesh_replica_lag_records tells how far behind
		}
		cp, err := merkle.ParseCheckpoint(noteBody(st.Verified))
		if err != nil || cp.Round > closed {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.lagRounds, prometheus.GaugeValue, float64(closed-cp.Round), origin)
	}
}
