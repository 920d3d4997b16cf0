package policy

import (
	"fmt"
	"testing"
)

// benchPolicy has n rules; only the second to last matches the benchmark's request, the rest
// fail on different conditions.
func benchPolicy(b *testing.B, n int) *Policy {
	def := Def{Name: "bench"}
	for i := range n - 2 {
		var r RuleDef
		switch i % 4 {
		case 0:
			r = RuleDef{Action: Allow, Zones: []string{"vpn"}, Paths: []string{fmt.Sprintf("/app%d/*", i)}}
		case 1:
			r = RuleDef{Action: Deny, Groups: []string{"contractors"}, Paths: []string{"/esign/*"}}
		case 2:
			r = RuleDef{Action: Allow, Methods: []string{"DELETE"}, Paths: []string{fmt.Sprintf("/files%d/*.pdf", i)}}
		case 3:
			r = RuleDef{Action: Allow, Users: []string{"alice", "bob"}, Paths: []string{fmt.Sprintf("/u%d", i)}}
		}
		def.Rules = append(def.Rules, r)
	}
	def.Rules = append(def.Rules,
		RuleDef{Name: "target", Action: Allow, Groups: []string{"staff"}, Zones: []string{"office"}, Methods: []string{"GET"}, Paths: []string{"/reports/*.html"}},
		RuleDef{Name: "last", Action: Deny},
	)
	p, err := Compile(def, testZones)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func benchEvaluate(b *testing.B, n int) {
	p := benchPolicy(b, n)
	f := user(inOffice, "sam", []string{"users", "staff"}, "GET", "/Reports/Q3-Summary.html")
	if d := p.Evaluate(&f); d.Outcome != OutcomeAllow || d.Rule != n-2 {
		b.Fatalf("unexpected decision %v", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		p.Evaluate(&f)
	}
}

func BenchmarkEvaluate10Rules(b *testing.B)  { benchEvaluate(b, 10) }
func BenchmarkEvaluate100Rules(b *testing.B) { benchEvaluate(b, 100) }
