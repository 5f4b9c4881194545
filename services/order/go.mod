module github.com/eventshop/eventshop/services/order

go 1.26
