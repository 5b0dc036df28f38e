"""Device choice, mixed precision and seeding (helpers.device)."""





