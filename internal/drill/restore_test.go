package drill

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestRestore runs a small restore drill against real hub and node
// processes built from this module: the backups must restore exactly,
// what the sender's outbox held must be recovered, nothing but what the
// hub had accepted after the backup for the restored node may be lost,
// and delivery must resume.
func TestRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs real processes; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "taxlink")
	if out, err := exec.Command("go", "build", "-o", bin, "taxlink/cmd/taxlink").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Restore(ctx, RestoreOptions{Binary: bin, Before: 60, AfterBackup: 15, AfterRestore: 10, Settle: time.Minute, Progress: testWriter{t: t}})
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Summary
	t.Logf("summary: %+v", s)
	for _, f := range rep.Findings {
		t.Logf("finding: %s", f)
	}
	for _, p := range rep.Problems {
		t.Logf("problem: %s", p)
	}
	if rep.Dir != "" {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("network, backups and logs kept in %s", rep.Dir)
				return
			}
			_ = os.RemoveAll(rep.Dir)
		})
	}
	if s.BackedUpRecords == 0 || s.BackedUpRecords != s.ExpectedRecords || s.RestoredRecords != s.BackedUpRecords {
		t.Errorf("records: expected %d, backed up %d, restored %d", s.ExpectedRecords, s.BackedUpRecords, s.RestoredRecords)
	}
	if !s.RestoredVerified {
		t.Error("the restored logs do not verify against their backups")
	}
	if s.AfterBackup != 15 || s.Recovered != 5 {
		t.Errorf("after backup %d, recovered %d; want 15 and 5", s.AfterBackup, s.Recovered)
	}
	if s.Lost != s.ToRestoredNode || s.LostIdentified != s.Lost {
		t.Errorf("lost %d (identified %d), accepted for the restored node after the backup %d", s.Lost, s.LostIdentified, s.ToRestoredNode)
	}
	if !s.DeliveryResumed {
		t.Error("delivery did not resume after the restore")
	}
	// The ledger restored from a backup older than what the participants
	// witnessed cannot be consistent with it: the drill must say so.
	if s.WitnessedEntries > s.BackupLedgerEntries && s.LedgerConsistent {
		t.Errorf("ledger reported consistent although the backup (%d entries) is behind what was witnessed (%d)", s.BackupLedgerEntries, s.WitnessedEntries)
	}
	if !s.Passed {
		t.Error("the drill did not pass")
	}
}
