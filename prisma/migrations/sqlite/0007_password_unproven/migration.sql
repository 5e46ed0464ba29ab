-- Written by hand: Prisma's diff rebuilds the whole users table for a new column; SQLite adds one
-- with a constant default in place, at no cost for a large table.
ALTER TABLE "users" ADD COLUMN "password_unproven" BOOLEAN NOT NULL DEFAULT false;
