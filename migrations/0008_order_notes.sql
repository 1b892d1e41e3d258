-- What operators did to an order that its provisioned state alone does not tell: a
-- partner call given up (canceled) never reached UChat, and a note says which.
ALTER TABLE orders ADD COLUMN notes TEXT[] NOT NULL DEFAULT '{}';
