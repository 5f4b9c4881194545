package discount

import (
	"slices"
	"strings"
)

// Status of a cart as the discount service knows it.
type Status string

// Cart statuses.
const (
	StatusOpen       Status = "open"
	StatusCheckedOut Status = "checked_out"
)

// Cart is a cart as its events describe it. Version counts the discount events published
// for it (their aggregate version), not the cart's own changes.
type Cart struct {
	ID         string
	UserID     string
	Status     Status
	Lines      []Line // ordered by product id
	CouponCode string
	Version    int64
}

// SetLine adds l or replaces the line of its product.
func (c *Cart) SetLine(l Line) {
	i, found := slices.BinarySearchFunc(c.Lines, l.ProductID, func(x Line, id string) int { return strings.Compare(x.ProductID, id) })
	if found {
		c.Lines[i] = l
		return
	}
	c.Lines = slices.Insert(c.Lines, i, l)
}

// RemoveLine removes productID's line, if any.
func (c *Cart) RemoveLine(productID string) {
	c.Lines = slices.DeleteFunc(c.Lines, func(l Line) bool { return l.ProductID == productID })
}

// Replace sets the cart's lines and coupon to a checkout snapshot and closes it.
func (c *Cart) Replace(lines []Line, coupon string) {
	c.Lines = slices.Clone(lines)
	slices.SortFunc(c.Lines, func(a, b Line) int { return strings.Compare(a.ProductID, b.ProductID) })
	c.CouponCode = coupon
	c.Status = StatusCheckedOut
}

// NextVersion advances the cart's discount event version and returns it.
func (c *Cart) NextVersion() int64 {
	c.Version++
	return c.Version
}
