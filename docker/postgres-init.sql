-- One database per service that owns data (compose.infra.yaml's PostgreSQL).
CREATE DATABASE gavel_lots;
CREATE DATABASE gavel_bids;
CREATE DATABASE gavel_wallets;
CREATE DATABASE gavel_notifier;
