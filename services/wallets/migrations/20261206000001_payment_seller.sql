-- The seller's account, so the seller can follow the payment for a lot it sold ("sold, awaiting
-- payment" -> "paid"). Payments made before this column existed have none: only their winner
-- reads them.
ALTER TABLE payments ADD COLUMN seller UUID;
