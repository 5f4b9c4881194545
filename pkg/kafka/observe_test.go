package kafka

import (
	"slices"
	"testing"
)

func TestStatsLags(t *testing.T) {
	doc := `{"name":"c","type":"consumer","topics":{"cart":{"partitions":{
		"0":{"consumer_lag":3,"fetch_state":"active"},
		"1":{"consumer_lag":-1,"fetch_state":"active"},
		"2":{"consumer_lag":0,"fetch_state":"active"},
		"3":{"consumer_lag":9,"fetch_state":"none"},
		"-1":{"consumer_lag":4,"fetch_state":"none"}}}}}`
	got, err := statsLags(doc)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b PartitionLag) int { return int(a.Partition - b.Partition) })
	want := []PartitionLag{{"cart", 0, 3}, {"cart", 2, 0}}
	if !slices.Equal(got, want) {
		t.Errorf("statsLags = %v, want %v (unknown lag, unassigned and internal partitions left out)", got, want)
	}
	if _, err := statsLags("{"); err == nil {
		t.Error("statsLags of broken JSON: want an error")
	}
}
