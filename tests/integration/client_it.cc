int dummy_it;
