module github.com/eventshop/eventshop/services/discount

go 1.26
