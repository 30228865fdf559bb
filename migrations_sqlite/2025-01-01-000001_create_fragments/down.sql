DROP TABLE fragments;
