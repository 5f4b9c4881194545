module github.com/eventshop/eventshop/services/cart

go 1.26
