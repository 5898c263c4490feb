package directory

import (
	"testing"
	"time"
)

func TestHeldBy(t *testing.T) {
	d := &Directory{Holds: []Hold{
		{ID: "r1", Scope: "route", From: "nta:hq", To: "lg:011002"},
		{ID: "t1", Scope: "type", Type: "paper-return-scan"},
	}}
	tests := []struct {
		from, to, typ, want string
	}{
		{"nta:hq", "lg:011002", "income-tax-return", "r1"},
		{"nta:hq", "lg:130001", "income-tax-return", ""},
		{"nta:hq", "lg:130001", "paper-return-scan", "t1"},
		{"lg:011002", "nta:hq", "income-tax-return", ""},
	}
	for _, tt := range tests {
		got := ""
		if h := d.HeldBy(tt.from, tt.to, tt.typ); h != nil {
			got = h.ID
		}
		if got != tt.want {
			t.Errorf("HeldBy(%s, %s, %s) = %q, want %q", tt.from, tt.to, tt.typ, got, tt.want)
		}
	}
	d.Holds = append(d.Holds, Hold{ID: "all", Scope: "network"})
	if h := d.HeldBy("lg:011002", "nta:hq", "x"); h == nil || h.ID != "all" {
		t.Errorf("a network hold does not hold everything: %v", h)
	}
}

func TestBulletinsFor(t *testing.T) {
	now := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	d := &Directory{Bulletins: []Bulletin{
		{ID: "a", Time: now, Audience: []string{"*"}},
		{ID: "b", Time: now.Add(time.Hour), Audience: []string{"lg:011002"}},
		{ID: "c", Time: now.Add(2 * time.Hour), Audience: []string{"lg:130001"}},
	}}
	got := d.BulletinsFor([]string{"lg:011002", "lg:013030"})
	if len(got) != 2 || got[0].ID != "b" || got[1].ID != "a" {
		t.Errorf("BulletinsFor = %+v, want b then a", got)
	}
}
