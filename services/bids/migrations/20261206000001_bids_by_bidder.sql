-- "My auctions": the lots an account bid on, found without reading every bid.
CREATE INDEX bids_by_bidder ON bids (bidder, lot_id);
